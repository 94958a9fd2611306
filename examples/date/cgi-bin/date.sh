#!/bin/sh
# The live date page: the server's current date, in a page that reloads itself
# every second. Run it with `wharf --cgi examples/date` and open /cgi-bin/date.sh.
now=$(date '+%Y-%m-%d %H:%M:%S %Z')
printf 'Content-Type: text/html; charset=utf-8\r\n'
printf 'Cache-Control: no-store\r\n'
printf '\r\n'
cat <<PAGE
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="1">
<title>The time on this server</title>
</head>
<body>
<h1>The time on this server</h1>
<p id="now">$now</p>
</body>
</html>
PAGE
