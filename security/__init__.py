"""Site PKI and broker access: CA and device certificates, passwords and topic ACLs."""
