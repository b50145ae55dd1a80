"""access/request -> decision -> access/response, plus the access event trail."""
