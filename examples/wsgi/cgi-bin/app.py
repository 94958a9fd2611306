#!/usr/bin/env python3
"""The WSGI application of ../app.py, run as a CGI program by the standard
library's wsgiref.handlers.CGIHandler."""

import os
import sys
from wsgiref.handlers import CGIHandler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from app import application  # noqa: E402

CGIHandler().run(application)
