"""The storefront: the shop in a browser, a backend-for-frontend on the four services."""
