"""Accelerator inventory, reservations, leases, team quota, 算力券 vouchers and the ledger."""
