"""Contracts and plumbing shared by every service."""
