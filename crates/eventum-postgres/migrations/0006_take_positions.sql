-- Takes `n` positions starting at `first` for a transaction that already inserted its
-- events there (a group written while the previous group was still committing): it waits
-- for the `log_head` row lock like any appender, then succeeds only if the head is
-- `first`. Otherwise (the previous group failed, or another process took positions) it
-- raises SQLSTATE EV001, the transaction rolls back, and the group is written again.
-- Commit order still equals position order: the row lock is held until commit. The lock
-- is taken before the head is compared (`FOR UPDATE` returns the row as the previous
-- holder committed it; an `UPDATE … WHERE next_position = first` would compare against
-- the snapshot from before the wait and skip the row). The function keeps the schema it
-- was created in (`search_path FROM CURRENT`).
CREATE FUNCTION take_positions(first bigint, n bigint, channel text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    head bigint;
BEGIN
    SELECT next_position INTO head FROM log_head FOR UPDATE;
    IF head IS DISTINCT FROM first THEN
        RAISE EXCEPTION 'positions from % were taken by another transaction (the head is %)',
            first, head USING ERRCODE = 'EV001';
    END IF;
    UPDATE log_head SET next_position = first + n;
    PERFORM pg_notify(channel, (first + n - 1)::text);
END
$$;
