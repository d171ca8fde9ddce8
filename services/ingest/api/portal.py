"""/portal: the branch manager's page. Send the till's files (one or many, dragged in), watch each one load,
read what became of it in words (loaded N, already had N, rejected N) with the rejected rows (masked) and why,
see which days of the branch are in, missing or failed (missing first), and the files sent before.

Signed in through orders' /signin (the one sign-in, services/common/signin.py): without a session the page
sends the browser there and back. Its script calls ingest's own JSON API (/v1/uploads, /v1/coverage) with the
session cookie and this page's CSRF token (X-CSRFToken), never a bearer token, so the page holds no credential
a script could carry away. A manager (or staff tied to a branch) sees their own branch; an admin any branch.
Coverage is the grid reporting shows (services/common/coverage.py), answered here from the same tables: a
call from this page to reporting would be cross-origin in development (another port) and need CORS with
credentials, a wider door than one shared function. Script and style are files beside the page (no CDN:
branch networks may have no internet); nothing inline, so the CSP forbids inline script."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template, send_from_directory

from services.common.sessions import page_blueprint
from services.common.signin import signed_in_page, signed_out_redirect, strict_page_headers

STATIC = Path(__file__).resolve().parent.parent / "static"
bp = strict_page_headers(page_blueprint(Blueprint("portal", __name__, url_prefix="/portal",
                                                 template_folder="../templates")))


@bp.get("")
@signed_in_page("ingest")
def page(user):
    return render_template("portal.html", user=user)


@bp.post("/signout")
def signout():
    return signed_out_redirect()


@bp.get("/portal.js")
def script():
    return send_from_directory(STATIC, "portal.js", mimetype="text/javascript", max_age=0)


@bp.get("/portal.css")
def style():
    return send_from_directory(STATIC, "portal.css", mimetype="text/css", max_age=0)
