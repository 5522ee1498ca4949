"""Differential tests: migwatch against the real Prisma engine (prisma-oracle)."""
