"""The JSON API under /api/v1/ and the boot endpoints: one blueprint per resource. The app
factory (server/app.py) registers them beside the web UI."""
