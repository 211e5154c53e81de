-- Pruning keeps each consumer's newest ids: it walks that consumer's ids by age.
CREATE INDEX consumer_inbox_seq ON consumer_inbox (consumer, seq);
