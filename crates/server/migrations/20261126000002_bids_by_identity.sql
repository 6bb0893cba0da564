-- Bids are kept by their identity, (auction_id, bidder, bid_id), the key under which the bid script
-- stores each outcome. A seq is not an identity: a Redis that loses its last writes (a failover to
-- a replica that was behind, an append-only file missing its last second) hands the lost bids' seqs
-- to new bids, and keying by seq would keep one of the two bids and silently drop the other. Both
-- are real bids that some bidder was told were accepted, so both are kept, (auction_id, seq) is
-- only an index, and a row id orders bids that share a seq (the one written first first).

ALTER TABLE bids
    DROP PRIMARY KEY,
    ADD COLUMN id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT FIRST,
    ADD PRIMARY KEY (id),
    ADD KEY idx_bids_seq (auction_id, seq);
