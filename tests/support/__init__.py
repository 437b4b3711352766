"""Test infrastructure shared by the suites: a real OAI-PMH server on 127.0.0.1, data builders."""
