"""The service's routers: search (text, example upload, similar), clips (metadata, audio),
collections, and the page (HTML, static files, favicon). :func:`~soundseek.service.app.create_app`
includes them; each reads the open index from :func:`~soundseek.service.context.get_ctx`."""
