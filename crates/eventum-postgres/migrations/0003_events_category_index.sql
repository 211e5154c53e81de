-- Category reads and category subscriptions walk one category in global order.
CREATE INDEX events_category_position ON events (category, position);
