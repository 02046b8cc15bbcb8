//! Reads for the explorer: pages of the graph, the frontier's lineages, search, a node's
//! records, the keeps over time and per-node tallies. Every read is bounded by a `limit` the
//! caller passes; none loads the whole store.

use rusqlite::params;

use super::{DagStore, StoreError};

/// One stored record as the explorer shows it: the signed JSON plus what the store knows.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowseRow {
    pub id: String,
    pub parent: Option<String>,
    pub payload: String,
    pub on_frontier: bool,
    /// How many stored records name this one as parent.
    pub children: u64,
    /// The parent is named but not stored here.
    pub orphan: bool,
}

/// A keep, for the best-over-time chart.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepPoint {
    pub id: String,
    pub gpu_model: String,
    pub timestamp: i64,
    pub val_bpb: f64,
}

/// The frontier of one GPU model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFrontier {
    pub gpu_model: String,
    pub size: u64,
    pub best_id: String,
    pub best_val_bpb: f64,
}

/// What the store knows about one node id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTally {
    pub node_id: String,
    pub published: u64,
    /// Its records that carry at least one signed verification.
    pub verified: u64,
    /// Signed verifications and challenge responses it made.
    pub verifications: u64,
    /// Disputes it raised against records later rejected.
    pub disputes_won: u64,
    /// Its records rejected by a dispute.
    pub disputes_lost: u64,
}

const ROW: &str = "SELECT r.id, r.parent, r.payload, r.on_frontier, \
     (SELECT COUNT(*) FROM record c WHERE c.parent = r.id), \
     (r.parent IS NOT NULL AND r.parent != '' AND NOT EXISTS (SELECT 1 FROM record p WHERE p.id = r.parent)) \
     FROM record r";

fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BrowseRow> {
    Ok(BrowseRow {
        id: row.get(0)?,
        parent: row.get::<_, Option<String>>(1)?.filter(|p| !p.is_empty()),
        payload: row.get(2)?,
        on_frontier: row.get::<_, i64>(3)? == 1,
        children: row.get::<_, i64>(4)? as u64,
        orphan: row.get::<_, i64>(5)? == 1,
    })
}

impl DagStore {
    /// One record with what the store knows about it.
    pub fn browse_one(&self, id: &str) -> Result<Option<BrowseRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("{ROW} WHERE r.id = ?1"))?;
        let mut rows = stmt.query_map([id], row)?;
        Ok(rows.next().transpose()?)
    }

    /// Records in sync order (parents first: depth, then timestamp), `offset` rows in.
    pub fn graph_page(&self, offset: usize, limit: usize) -> Result<Vec<BrowseRow>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached(&format!("{ROW} ORDER BY r.depth_key, r.ts_key, r.seq LIMIT ?1 OFFSET ?2"))?;
        let rows = stmt.query_map(params![limit as i64, offset as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The best `per_class` frontier records of every GPU model with all their stored ancestors
    /// (parents first), then the other children of those ancestors (what was tried from each
    /// step, oldest first); at most `limit` rows, so a cut drops tried children before lineage.
    pub fn frontier_lineages(&self, per_class: usize, limit: usize) -> Result<Vec<BrowseRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "WITH RECURSIVE lineage(id) AS ( \
               SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY gpu_model ORDER BY val_bpb, seq) AS rank \
                               FROM record WHERE on_frontier = 1) WHERE rank <= ?1 \
               UNION \
               SELECT r.parent FROM record r JOIN lineage l ON r.id = l.id WHERE r.parent IS NOT NULL AND r.parent != '' \
             ), \
             shown(id, tier) AS ( \
               SELECT id, 0 FROM lineage \
               UNION ALL \
               SELECT c.id, 1 FROM record c JOIN lineage l ON c.parent = l.id \
                 WHERE c.id NOT IN (SELECT id FROM lineage) \
             ) \
             {ROW} JOIN shown s ON s.id = r.id ORDER BY s.tier, r.depth_key, r.ts_key, r.seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![per_class as i64, limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Python's search: the id or the node id starts with `query` (case-sensitive), or the
    /// description or GPU model contains it (case-insensitive); parents first.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<BrowseRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{ROW} WHERE substr(r.id, 1, length(?1)) = ?1 OR substr(r.node_id, 1, length(?1)) = ?1 \
               OR instr(lower(r.gpu_model), lower(?1)) > 0 \
               OR instr(lower(json_extract(r.payload, '$.description')), lower(?1)) > 0 \
             ORDER BY r.depth_key, r.ts_key, r.seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![query, limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One node's records, oldest first.
    pub fn by_node(&self, node_id: &str, limit: usize) -> Result<Vec<BrowseRow>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached(&format!("{ROW} WHERE r.node_id = ?1 ORDER BY r.ts_key, r.seq LIMIT ?2"))?;
        let rows = stmt.query_map(params![node_id, limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The `limit` newest records (by timestamp), newest first.
    pub fn recent_rows(&self, limit: usize) -> Result<Vec<BrowseRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("{ROW} ORDER BY r.ts_key DESC, r.seq DESC LIMIT ?1"))?;
        let rows = stmt.query_map([limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The direct children of a record, oldest first.
    pub fn children_rows(&self, id: &str, limit: usize) -> Result<Vec<BrowseRow>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached(&format!("{ROW} WHERE r.parent = ?1 ORDER BY r.ts_key, r.seq LIMIT ?2"))?;
        let rows = stmt.query_map(params![id, limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many records are on the frontier (all GPU models).
    pub fn frontier_size(&self) -> Result<u64, StoreError> {
        Ok(self.conn.query_row(super::FRONTIER_SIZE, [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Size and best record of the frontier of every GPU model.
    pub fn frontier_by_model(&self) -> Result<Vec<ModelFrontier>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT gpu_model, COUNT(*), \
               (SELECT b.id FROM record b WHERE b.on_frontier = 1 AND b.gpu_model = f.gpu_model \
                ORDER BY b.val_bpb, b.seq LIMIT 1), \
               MIN(val_bpb) \
             FROM record f WHERE on_frontier = 1 GROUP BY gpu_model ORDER BY gpu_model",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(ModelFrontier {
                gpu_model: row.get(0)?,
                size: row.get::<_, i64>(1)? as u64,
                best_id: row.get(2)?,
                best_val_bpb: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keeps that no dispute rejected, oldest first, at most `limit`.
    pub fn keeps_over_time(&self, limit: usize) -> Result<Vec<KeepPoint>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, r.gpu_model, r.ts_key, r.val_bpb FROM record r \
             WHERE r.status = 'keep' AND NOT EXISTS (SELECT 1 FROM rejected x WHERE x.id = r.id) \
             ORDER BY r.ts_key, r.seq LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |row| {
            Ok(KeepPoint { id: row.get(0)?, gpu_model: row.get(1)?, timestamp: row.get(2)?, val_bpb: row.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Per-node tallies for the leaderboard, for every node that published or verified.
    pub fn node_tallies(&self) -> Result<Vec<NodeTally>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "WITH nodes(node_id) AS (SELECT node_id FROM record UNION SELECT actor FROM control_event) \
             SELECT n.node_id, \
               (SELECT COUNT(*) FROM record r WHERE r.node_id = n.node_id), \
               (SELECT COUNT(DISTINCT r.id) FROM record r JOIN control_event c ON c.experiment_id = r.id \
                  WHERE r.node_id = n.node_id AND c.kind = 'verification'), \
               (SELECT COUNT(*) FROM control_event c WHERE c.actor = n.node_id \
                  AND c.kind IN ('verification', 'challenge_response')), \
               (SELECT COUNT(*) FROM control_event c JOIN rejected x ON x.id = c.experiment_id \
                  WHERE c.actor = n.node_id AND c.kind = 'dispute'), \
               (SELECT COUNT(*) FROM record r JOIN rejected x ON x.id = r.id WHERE r.node_id = n.node_id) \
             FROM nodes n",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(NodeTally {
                node_id: row.get(0)?,
                published: row.get::<_, i64>(1)? as u64,
                verified: row.get::<_, i64>(2)? as u64,
                verifications: row.get::<_, i64>(3)? as u64,
                disputes_won: row.get::<_, i64>(4)? as u64,
                disputes_lost: row.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
