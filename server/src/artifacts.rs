//! Artifacts: files in object storage that jobs read (uploads) and write (exports, reports,
//! error reports). The bytes live in the store (`object_store`: a folder under the data folder
//! by default, S3 when `TWH_OBJECT_STORE_URL` is an `s3://` URL); a row per file in `artifacts`
//! says whose it is, what it is and until when it is kept. Everything is tenant-scoped: a file's
//! key starts with its tenant, and every read looks the row up by tenant first.

use std::sync::Arc;

use async_graphql::{ID, SimpleObject};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use futures_util::{Stream, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::ArtifactsConfig;
use crate::ids;

/// Media types an upload may carry: what imports read (CSV, and text and JSON for tools that
/// label CSV so).
pub const UPLOAD_TYPES: &[&str] = &[
    "text/csv",
    "application/csv",
    "text/plain",
    "application/json",
    "application/vnd.ms-excel",
];

pub const MAX_NAME_LEN: usize = 200;

/// The object store behind artifacts, and what it is (for logs and `/readyz`).
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    pub description: String,
}

impl Store {
    /// The store `TWH_OBJECT_STORE_URL` names: `s3://bucket[/prefix]` (credentials, region
    /// and endpoint from the standard AWS variables), `file:///path`, or by default a folder
    /// under the data folder.
    pub fn open(config: &ArtifactsConfig) -> anyhow::Result<Self> {
        match config.store_url.as_deref() {
            Some(url) if url.starts_with("s3://") => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| anyhow::anyhow!("TWH_OBJECT_STORE_URL={url} is not a URL: {e}"))?;
                let bucket = parsed.host_str().unwrap_or_default().to_owned();
                if bucket.is_empty() {
                    anyhow::bail!(
                        "TWH_OBJECT_STORE_URL={url} names no bucket: use s3://bucket/prefix"
                    );
                }
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .build()
                    .map_err(|e| anyhow::anyhow!("the S3 store {url} is not usable: {e}"))?;
                let prefix = parsed.path().trim_matches('/').to_owned();
                let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
                };
                Ok(Self {
                    inner,
                    description: format!("s3://{bucket}/{prefix}"),
                })
            }
            Some(url) if url.starts_with("file://") => {
                Self::local(std::path::Path::new(url.trim_start_matches("file://")))
            }
            Some(url) => anyhow::bail!(
                "TWH_OBJECT_STORE_URL={url} is not supported: use s3://bucket/prefix or file:///path"
            ),
            None => Self::local(&config.local_dir),
        }
    }

    fn local(dir: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("cannot create the artifact folder {}: {e}", dir.display())
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            inner: Arc::new(fs),
            description: format!("file://{}", dir.display()),
        })
    }

    pub fn inner(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }
}

/// A stored file, as the API shows it.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub id: ID,
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// `upload`, `output` (an export or report), `errors` (an import's rejected rows) or
    /// `dryRun` (what an import would change).
    pub purpose: String,
    pub job_id: Option<ID>,
    /// Where to download it (`GET`, with the tenant's key).
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// When it is deleted.
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Stored {
    pub tenant_id: String,
    pub artifact: Artifact,
    pub storage_key: String,
}

const COLUMNS: [&str; 12] = [
    "tenant_id",
    "id",
    "name",
    "content_type",
    "size_bytes",
    "sha256",
    "storage_key",
    "job_id",
    "purpose",
    "created_by",
    "created_at",
    "expires_at",
];

fn from_row(row: &QueryResult) -> Result<Stored, DbErr> {
    let id: String = row.try_get("", "id")?;
    Ok(Stored {
        tenant_id: row.try_get("", "tenant_id")?,
        storage_key: row.try_get("", "storage_key")?,
        artifact: Artifact {
            url: download_path(&id),
            id: ID(id),
            name: row.try_get("", "name")?,
            content_type: row.try_get("", "content_type")?,
            size_bytes: row.try_get("", "size_bytes")?,
            sha256: row.try_get("", "sha256")?,
            purpose: row.try_get("", "purpose")?,
            job_id: row.try_get::<Option<String>>("", "job_id")?.map(ID),
            created_at: row.try_get("", "created_at")?,
            expires_at: row.try_get("", "expires_at")?,
        },
    })
}

pub fn download_path(id: &str) -> String {
    format!("/v1/artifacts/{id}")
}

/// Why a file was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the upload failed: {0}")]
    Body(String),
    #[error(transparent)]
    Storage(#[from] object_store::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What a new artifact is, besides its bytes.
pub struct NewArtifact<'a> {
    pub tenant_id: &'a str,
    pub name: &'a str,
    pub content_type: &'a str,
    pub purpose: &'a str,
    pub job_id: Option<&'a str>,
    pub created_by: &'a str,
}

/// Writes a file to the store as it arrives, counting and hashing it, then records it. Past
/// `limit` bytes the upload is aborted and nothing is kept.
pub struct ArtifactWriter {
    id: String,
    key: StorePath,
    writer: BufWriter,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl ArtifactWriter {
    pub fn new(store: &Store, tenant_id: &str, limit: u64) -> Self {
        let id = ids::new_id(ids::ARTIFACT);
        let key = StorePath::from(format!("{tenant_id}/{id}"));
        Self {
            writer: BufWriter::with_capacity(store.inner(), key.clone(), 8 * 1024 * 1024),
            id,
            key,
            hasher: Sha256::new(),
            size: 0,
            limit,
        }
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(StoreError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.writer.write_all(chunk).await?;
        Ok(())
    }

    /// Drops what was written (a failed or refused upload).
    pub async fn abort(mut self) {
        if let Err(err) = self.writer.abort().await {
            tracing::debug!(error = %err, "aborting an artifact upload");
        }
    }

    /// Completes the object and records the artifact.
    pub async fn finish(
        mut self,
        db: &impl ConnectionTrait,
        new: NewArtifact<'_>,
        retention_days: i64,
    ) -> Result<Artifact, StoreError> {
        self.writer.shutdown().await?;
        let now = Utc::now();
        let artifact = Artifact {
            url: download_path(&self.id),
            id: ID(self.id.clone()),
            name: new.name.to_owned(),
            content_type: new.content_type.to_owned(),
            size_bytes: self.size as i64,
            sha256: hex::encode(self.hasher.finalize()),
            purpose: new.purpose.to_owned(),
            job_id: new.job_id.map(|j| ID(j.to_owned())),
            created_at: now,
            expires_at: now + Duration::days(retention_days),
        };
        let insert = Query::insert()
            .into_table("artifacts")
            .columns(COLUMNS)
            .values_panic([
                new.tenant_id.into(),
                self.id.clone().into(),
                artifact.name.clone().into(),
                artifact.content_type.clone().into(),
                artifact.size_bytes.into(),
                artifact.sha256.clone().into(),
                self.key.to_string().into(),
                new.job_id.map(str::to_owned).into(),
                artifact.purpose.clone().into(),
                new.created_by.into(),
                artifact.created_at.into(),
                artifact.expires_at.into(),
            ])
            .to_owned();
        db.execute(&insert).await?;
        Ok(artifact)
    }
}

/// Stores a stream of chunks (an upload) as one artifact.
pub async fn store_stream<S, E>(
    store: &Store,
    db: &impl ConnectionTrait,
    new: NewArtifact<'_>,
    mut body: S,
    limit: u64,
    retention_days: i64,
) -> Result<Artifact, StoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut writer = ArtifactWriter::new(store, new.tenant_id, limit);
    while let Some(chunk) = body.next().await {
        let outcome = match chunk {
            Ok(chunk) => writer.write(&chunk).await,
            Err(err) => Err(StoreError::Body(err.to_string())),
        };
        if let Err(err) = outcome {
            writer.abort().await;
            return Err(err);
        }
    }
    writer.finish(db, new, retention_days).await
}

/// Stores bytes already in memory (small reports).
pub async fn store_bytes(
    store: &Store,
    db: &impl ConnectionTrait,
    new: NewArtifact<'_>,
    bytes: Vec<u8>,
    retention_days: i64,
) -> Result<Artifact, StoreError> {
    let mut writer = ArtifactWriter::new(store, new.tenant_id, u64::MAX);
    if let Err(err) = writer.write(&bytes).await {
        writer.abort().await;
        return Err(err);
    }
    writer.finish(db, new, retention_days).await
}

/// One of the tenant's artifacts that has not expired.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    id: &str,
) -> Result<Option<Stored>, DbErr> {
    let select = Query::select()
        .columns(COLUMNS)
        .from("artifacts")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("id").eq(id))
        .and_where(Expr::col("expires_at").gt(Utc::now()))
        .to_owned();
    db.query_one(&select)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The artifacts a job wrote (or read), oldest first.
pub async fn of_job(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    job_id: &str,
) -> Result<Vec<Artifact>, DbErr> {
    let select = Query::select()
        .columns(COLUMNS)
        .from("artifacts")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("job_id").eq(job_id))
        .and_where(Expr::col("expires_at").gt(Utc::now()))
        .order_by("id", sea_orm::Order::Asc)
        .to_owned();
    db.query_all(&select)
        .await?
        .iter()
        .map(|row| from_row(row).map(|s| s.artifact))
        .collect()
}

/// The content as a stream of chunks.
pub async fn open(
    store: &Store,
    stored: &Stored,
) -> Result<impl Stream<Item = Result<Bytes, object_store::Error>> + use<>, object_store::Error> {
    let result = store
        .inner
        .get(&StorePath::from(stored.storage_key.as_str()))
        .await?;
    Ok(result.into_stream())
}

/// The whole content (import inputs, bounded by the upload limit).
pub async fn read_all(store: &Store, stored: &Stored) -> Result<Bytes, object_store::Error> {
    store
        .inner
        .get(&StorePath::from(stored.storage_key.as_str()))
        .await?
        .bytes()
        .await
}

/// Deletes expired artifacts, their bytes first; returns how many went.
pub async fn sweep_expired(store: &Store, db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let select = Query::select()
        .columns(COLUMNS)
        .from("artifacts")
        .and_where(Expr::col("expires_at").lte(Utc::now()))
        .limit(500)
        .to_owned();
    let mut removed = 0;
    for row in db.query_all(&select).await? {
        let stored = from_row(&row)?;
        match store
            .inner
            .delete(&StorePath::from(stored.storage_key.as_str()))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => {
                tracing::warn!(error = %err, artifact = %stored.artifact.id.0, "deleting an expired artifact failed");
                continue;
            }
        }
        let delete = Query::delete()
            .from_table("artifacts")
            .and_where(Expr::col("tenant_id").eq(stored.tenant_id.as_str()))
            .and_where(Expr::col("id").eq(stored.artifact.id.0.as_str()))
            .to_owned();
        db.execute(&delete).await?;
        removed += 1;
    }
    Ok(removed)
}

/// Checks an upload's media type (parameters such as `charset` aside).
pub fn acceptable_type(raw: Option<&str>) -> Option<String> {
    let essence = raw?.split(';').next()?.trim().to_ascii_lowercase();
    UPLOAD_TYPES.contains(&essence.as_str()).then_some(essence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_types_are_checked_without_parameters() {
        assert_eq!(
            acceptable_type(Some("text/csv; charset=utf-8")).as_deref(),
            Some("text/csv")
        );
        assert_eq!(
            acceptable_type(Some("TEXT/CSV")).as_deref(),
            Some("text/csv")
        );
        assert_eq!(acceptable_type(Some("image/png")), None);
        assert_eq!(acceptable_type(None), None);
    }
}
