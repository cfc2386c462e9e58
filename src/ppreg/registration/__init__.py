"""Registration drivers: optimiser loops over pyramid levels (party1's side)."""
