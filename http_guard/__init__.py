"""HTTP hardening shared by the web apps (console, visitor API bridge): security headers, request body cap."""
