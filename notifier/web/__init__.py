"""The HTTP adapter: the shop's API, the customers' pages, the development inbox."""
