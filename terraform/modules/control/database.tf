# The control database: Cloud SQL for PostgreSQL 18, private IP only, TLS required, regional (HA),
# daily backups kept 14 days with point-in-time recovery, and the logging flags an audit expects.

resource "google_sql_database_instance" "control" {
  # checkov:skip=CKV_GCP_6: TLS is required (ssl_mode ENCRYPTED_ONLY); client certificates cannot be presented by Spin's Postgres interface, and the instance has a private address only.
  project             = var.project_id
  name                = "edgeshell-control"
  region              = var.gcp_region
  database_version    = "POSTGRES_18"
  deletion_protection = true
  depends_on          = [google_service_networking_connection.sql]

  settings {
    tier              = var.db_tier
    availability_type = "REGIONAL"
    disk_autoresize   = true
    disk_type         = "PD_SSD"

    ip_configuration {
      ipv4_enabled    = false
      private_network = module.network.network_id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "03:00"
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = 14
        retention_unit   = "COUNT"
      }
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = true
      record_client_address   = false
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }
}

resource "google_sql_database" "control" {
  project  = var.project_id
  instance = google_sql_database_instance.control.name
  name     = "control"
}

resource "random_password" "db" {
  length  = 40
  special = false
}

resource "google_sql_user" "edgeshell" {
  project  = var.project_id
  instance = google_sql_database_instance.control.name
  name     = "edgeshell"
  password = random_password.db.result
}

locals {
  db_host = "${google_sql_database_instance.control.private_ip_address}:5432"
  # sslmode=require: the instance accepts encrypted connections only.
  database_url = "postgres://${google_sql_user.edgeshell.name}:${random_password.db.result}@${local.db_host}/${google_sql_database.control.name}?sslmode=require"
}
