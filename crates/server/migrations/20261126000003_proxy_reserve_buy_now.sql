-- Proxy bids, reserve prices and buy-it-now (docs/protocol.md, "Proxy bids, reserve and
-- buy-it-now").
--
-- A row of `bids` is now a change of the price, which a standing max may have made in answer to
-- another bidder's bid: `bidder` is who leads after it, `placed_by` whose bid caused it (the bidder
-- itself for every bid from before this), and `auto` whether a max rather than the bid's own amount
-- set the price. A bid's identity is therefore (auction_id, placed_by, bid_id), the key under which
-- the bid script stores its outcome: one row per accepted bid that changed the price.

-- Every statement is safe to run again (MariaDB's IF [NOT] EXISTS), so a migration cut short (the
-- service killed while it ran: MySQL commits each DDL statement on its own) is completed by
-- running it once more (README, "Upgrading").

ALTER TABLE bids
    ADD COLUMN IF NOT EXISTS auto BOOLEAN NOT NULL DEFAULT FALSE AFTER amount,
    ADD COLUMN IF NOT EXISTS placed_by VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER auto;

UPDATE bids SET placed_by = bidder WHERE placed_by IS NULL;

ALTER TABLE bids
    MODIFY COLUMN placed_by VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    DROP KEY IF EXISTS uq_bids_bidder_bid,
    ADD UNIQUE KEY IF NOT EXISTS uq_bids_placed_by_bid (auction_id, placed_by, bid_id);

-- Every bid that carried a max (max_amount), for audit: the max is secret, kept here and in the
-- auction's log only. A leader's raise that changed no price has a row here and none in `bids`.
CREATE TABLE IF NOT EXISTS proxy_bids (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    auction_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    bidder      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    bid_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    amount      DECIMAL(18,2)   NOT NULL,
    max_amount  DECIMAL(18,2)   NOT NULL,
    placed_at   DATETIME(6)     NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_proxy_bids_bid (auction_id, bidder, bid_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The seller's settings (NULL when not set).
ALTER TABLE auctions
    ADD COLUMN IF NOT EXISTS reserve_price DECIMAL(18,2) NULL AFTER starting_bid,
    ADD COLUMN IF NOT EXISTS buy_now_price DECIMAL(18,2) NULL AFTER reserve_price;

-- Whether the price reached the reserve: NULL without a reserve; 0 means no sale (winner and
-- final_price NULL).
ALTER TABLE auction_results
    ADD COLUMN IF NOT EXISTS reserve_met BOOLEAN NULL AFTER final_price;
