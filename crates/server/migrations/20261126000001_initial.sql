-- The durable record: auctions with their final state, every accepted bid, and results.
-- Amounts are DECIMAL(18,2); times are UTC with microseconds. Ids are ASCII (the services refuse
-- anything else) and compared exactly (ascii_bin): "Alice" and "alice" are two bidders. Binary
-- collations reach clients as VARBINARY, so the services read id columns as bytes.

CREATE TABLE IF NOT EXISTS auctions (
    auction_id          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    title               VARCHAR(200)    NOT NULL,
    starting_bid        DECIMAL(18,2)   NOT NULL,
    start_time          DATETIME(6)     NOT NULL,
    -- The close in force: moved by extensions, final once the auction ended.
    end_time            DATETIME(6)     NOT NULL,
    extension_window_s  INT UNSIGNED    NOT NULL,
    extension_s         INT UNSIGNED    NOT NULL,
    status              VARCHAR(16)     NOT NULL,
    created_at          DATETIME(6)     NOT NULL,
    updated_at          DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (auction_id),
    KEY idx_auctions_status_end (status, end_time),
    KEY idx_auctions_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per accepted bid. (auction_id, seq) is the bid's identity: seq rises by one per change of
-- the auction, so a redelivered event can never insert twice.
CREATE TABLE IF NOT EXISTS bids (
    auction_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq         BIGINT UNSIGNED NOT NULL,
    bid_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    bidder      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    amount      DECIMAL(18,2)   NOT NULL,
    placed_at   DATETIME(6)     NOT NULL,
    PRIMARY KEY (auction_id, seq),
    UNIQUE KEY uq_bids_bidder_bid (auction_id, bidder, bid_id),
    KEY idx_bids_bidder (bidder, placed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS auction_results (
    auction_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    winner       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    final_price  DECIMAL(18,2)   NULL,
    bid_count    BIGINT UNSIGNED NOT NULL,
    ended_at     DATETIME(6)     NOT NULL,
    PRIMARY KEY (auction_id),
    KEY idx_results_winner (winner)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
