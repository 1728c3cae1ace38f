"""SASRec Explorer's engine. See README.md ("Project layout") for the modules."""
