"""``/docs`` without a network: Swagger UI served from the files of the ``swagger-ui-bundle-v2``
package (Swagger UI 5, which reads OpenAPI 3.1; part of ``pip install soundseek[serve]``)
instead of FastAPI's default CDN links. Without that package ``/docs`` is a plain page that
links the schema at ``/openapi.json``."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def swagger_ui_dir() -> Path | None:
    try:
        import swagger_ui_bundle  # type: ignore
    except ImportError:
        return None
    p = Path(swagger_ui_bundle.swagger_ui_path)
    return p if (p / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` (bundled Swagger UI, or a plain fallback page) to an app created with
    ``docs_url=None, redoc_url=None``."""
    assets = swagger_ui_dir()
    if assets is not None:
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount(ASSETS, StaticFiles(directory=assets), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
                                       swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                       swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                       swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")
        return

    @app.get("/docs", include_in_schema=False)
    def docs_plain() -> HTMLResponse:
        rows = "".join(f"<li><code>{', '.join(sorted(r.methods or []))} {r.path}</code> {r.summary or r.name}</li>"
                       for r in app.routes if getattr(r, "include_in_schema", False) and hasattr(r, "methods"))
        return HTMLResponse(f"<!doctype html><title>{app.title} API</title><h1>{app.title} API</h1>"
                            f"<p>Schema: <a href='/openapi.json'>/openapi.json</a> (install "
                            f"<code>pip install soundseek[serve]</code> for the interactive page).</p><ul>{rows}</ul>")
