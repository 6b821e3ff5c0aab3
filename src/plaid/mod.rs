//! Plaid API types, typed from the official OpenAPI spec (they land with the simulator).
