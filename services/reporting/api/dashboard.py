"""/dashboard: the morning page for managers. Signing in is orders' /signin (one account for every page;
services/common/signin.py): without a session the page sends the browser there and back. Every request
re-checks the user behind the session, so a deactivation, a password or role change or a sign-out on any
page ends it at once. Sign-out here posts (with its CSRF token) to /dashboard/signout, which ends the one
session of every page. The page draws its charts itself (static/charts.js: HTML tables and SVG, no chart
library) and loads nothing from another origin."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from services.common.errors import ApiError
from services.common.sessions import page_blueprint
from services.common.signin import signed_in_page, signed_out_redirect, strict_page_headers
from services.reporting.auth import user_reader
from services.reporting.filters import resolve_branches, uk_today
from services.reporting.queries.choices import opening_range

# No inline style either: the charts set sizes and colours through the CSSOM, which the policy allows. The
# page's icon is an empty data: URL (no favicon request).
bp = strict_page_headers(page_blueprint(Blueprint("dashboard", __name__, url_prefix="/dashboard",
                                                  template_folder="../templates", static_folder="../static",
                                                  static_url_path="/static")),
                         img_src="'self' data:")


@bp.get("")
@signed_in_page("reporting")
def page(user):
    # The URL always names the dates shown: without them (and without a preset, which the page turns into dates
    # itself), the browser is sent to the same view with the opening range. So a bookmark keeps its view, and
    # the page can ask for every figure at once instead of first asking where to open.
    if not any(request.args.get(name) for name in ("from", "to", "preset")):
        opening = _opening_range(user)
        if opening is not None:
            args = {**request.args.to_dict(flat=False), "from": opening[0].isoformat(), "to": opening[1].isoformat()}
            response = redirect(url_for("dashboard.page", **args), 303)
            response.headers["Cache-Control"] = "no-store"
            return response
    return render_template("dashboard.html", user=user)


def _opening_range(user):
    """The latest complete week with sales that this user may see (of the URL's branch, if any), or None
    (no sales yet, or a branch filter that is refused: the page then shows why)."""
    with current_app.extensions["cafeflow.db"].session() as session:
        try:
            branch_ids, _ = resolve_branches(session, request.args.getlist("branch") or None, user_reader(user))
        except ApiError:
            return None
        return opening_range(session, branch_ids, uk_today())


@bp.post("/signout")
def signout():
    return signed_out_redirect()
