"""Federation maths without Flower: device profiles and mixes, heterogeneous aggregation, communication ledger."""
