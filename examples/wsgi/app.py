"""One WSGI application, run two ways:

- as CGI, one process per request, by cgi-bin/app.py:
      wharf --cgi examples/wsgi             # then open /cgi-bin/app.py/
- in production, by gunicorn behind wharf's reverse proxy:
      gunicorn --chdir examples/wsgi -b 127.0.0.1:9000 app:application &
      wharf --proxy /app/=http://127.0.0.1:9000/ examples/wsgi   # then open /app/
"""

import html


def application(environ, start_response):
    path = environ.get("PATH_INFO", "") or "/"
    body = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>WSGI</title></head><body>"
        f"<p id=\"path\">WSGI says hello from {html.escape(path)}</p>"
        f"<p id=\"server\">{html.escape(environ.get('SERVER_SOFTWARE', ''))}</p>"
        "</body></html>"
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
