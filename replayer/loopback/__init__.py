"""Built-in loopback targets (HTTP/1.1 + h2c, and gRPC helloworld) for the demo and the tests."""
