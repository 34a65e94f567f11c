"""Episodes and corpora: schema, environments, experts, collection, text, mixtures."""
