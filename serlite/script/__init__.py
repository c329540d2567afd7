"""The SER configuration language: lexer, parser, nodes, compiler."""
