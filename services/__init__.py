"""Checkout Platform services: a shared kit plus one package per service."""
