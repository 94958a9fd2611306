#!/usr/bin/env python3
"""A form that greets whoever fills it in, over GET (the query string) and POST
(an urlencoded body on stdin). Run it with `wharf --cgi examples/form` and open
/cgi-bin/form.py."""

import html
import os
import sys
from urllib.parse import parse_qs

method = os.environ.get("REQUEST_METHOD", "GET")
if method == "POST":
    length = int(os.environ.get("CONTENT_LENGTH") or 0)
    fields = parse_qs(sys.stdin.buffer.read(length).decode("utf-8", "replace"))
else:
    fields = parse_qs(os.environ.get("QUERY_STRING", ""))
name = fields.get("name", [""])[0]

if method not in ("GET", "HEAD", "POST"):
    sys.stdout.write("Status: 405 Method Not Allowed\r\nAllow: GET, HEAD, POST\r\n")
    sys.stdout.write("Content-Type: text/plain\r\n\r\nGET or POST, please.\n")
    sys.exit(0)

greeting = f"<p id=\"greeting\">Hello, {html.escape(name)}! ({method})</p>" if name else ""
sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n\r\n")
sys.stdout.write(f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>A form</title></head>
<body>
{greeting}
<form method="post">
<label>Your name <input name="name"></label>
<button>Send</button>
</form>
<form method="get">
<label>Or by GET <input name="name"></label>
<button>Send</button>
</form>
</body>
</html>
""")
