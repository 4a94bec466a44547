"""Ways into graphc: the Python DSL (`dsl`, `layers`)."""
