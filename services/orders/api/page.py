"""/app: the staff page. Signed in through /signin (services/orders/api/signin.py): without a session it
sends the browser there and back. The page's script calls the JSON API with the session cookie and the CSRF
token of this page (X-CSRFToken), not with a bearer token: the cookie is HttpOnly, so a script injected into
the page could not read or carry away a credential; signing out ends it on the server at once. Script and
style are files beside it (no CDN: branch networks may have no internet)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template, send_from_directory

from services.common.sessions import page_blueprint
from services.common.signin import signed_in_page, strict_page_headers

STATIC = Path(__file__).resolve().parent.parent / "static"
# Nothing inline and nothing from elsewhere (services/common/signin.py, strict_page_headers).
bp = strict_page_headers(page_blueprint(Blueprint("page", __name__, template_folder="../templates")))


@bp.get("/app")
@signed_in_page("orders")
def staff_page(user):
    return render_template("app.html", user=user)


@bp.get("/app/app.js")
def staff_page_script():
    return send_from_directory(STATIC, "app.js", max_age=0)


@bp.get("/app/app.css")
def staff_page_style():
    return send_from_directory(STATIC, "app.css", max_age=0)
