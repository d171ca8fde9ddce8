"""/dashboard: the morning page for managers. Signing in is orders' /signin (one account for every page;
services/common/signin.py): without a session the page sends the browser there and back. Every request
re-checks the user behind the session, so a deactivation, a password or role change or a sign-out on any
page ends it at once. Sign-out here posts (with its CSRF token) to /dashboard/signout, which ends the one
session of every page. Charts use the plotly.js bundled in the plotly wheel, served from here: the page
loads nothing from another origin."""
from __future__ import annotations

from pathlib import Path

import plotly
from flask import Blueprint, render_template, send_from_directory

from services.common.sessions import page_blueprint
from services.common.signin import signed_in_page, signed_out_redirect, strict_page_headers

# Plotly sets element styles from script and draws with data:/blob: images, hence those two sources.
bp = strict_page_headers(page_blueprint(Blueprint("dashboard", __name__, url_prefix="/dashboard",
                                                  template_folder="../templates", static_folder="../static",
                                                  static_url_path="/static")),
                         default_src="'self'", style_src="'self' 'unsafe-inline'", img_src="'self' data: blob:")
PLOTLY_DIR = Path(plotly.__file__).parent / "package_data"


@bp.get("")
@signed_in_page("reporting")
def page(user):
    return render_template("dashboard.html", user=user)


@bp.post("/signout")
def signout():
    return signed_out_redirect()


@bp.get("/assets/plotly.min.js")
def plotly_js():
    return send_from_directory(PLOTLY_DIR, "plotly.min.js", mimetype="text/javascript", max_age=86400)
