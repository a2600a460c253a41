"""Example workflows that mirror the Medusa documentation's examples, one module each."""
