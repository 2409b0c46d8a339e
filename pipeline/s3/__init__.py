"""S3-compatible object storage (AWS S3, Ceph RGW, MinIO, SeaweedFS) behind the transport seam (the `[s3]` extra)."""
