"""The web application's pages: server-rendered jinja2 with small vanilla JavaScript.

``base`` wires the shared parts (i18n, rendering, login and CSRF middleware);
each other module owns one area's routes and templates (``templates/<area>/``).
"""
