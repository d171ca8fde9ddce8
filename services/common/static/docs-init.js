// Starts Swagger UI on this service's own document. A file, not an inline script, so the page's
// Content-Security-Policy needs no 'unsafe-inline' (services/common/headers.py).
"use strict";
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui-container" });
