//! Fresh databases for tests: a template migrated once (under an advisory
//! lock, so parallel test processes agree), cloned per test.

use inventiv_store::MIGRATOR;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection};

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must point at a PostgreSQL server (make test sets it)")
}

/// The server URL with its database replaced by `name`.
pub fn url_for(name: &str) -> String {
    let url = server_url();
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b.to_owned(), format!("?{q}")),
        None => (url.clone(), String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..host_end])
}

fn template_name() -> String {
    let mut hash = Sha256::new();
    for m in MIGRATOR.iter() {
        hash.update(m.version.to_le_bytes());
        hash.update(&m.checksum);
    }
    format!("inventiv_test_tmpl_{}", &hex::encode(hash.finalize())[..16])
}

async fn admin() -> PgConnection {
    PgConnection::connect(&url_for("postgres"))
        .await
        .expect("connect to the test PostgreSQL server")
}

async fn ensure_template(conn: &mut PgConnection) -> String {
    let name = template_name();
    conn.execute("SELECT pg_advisory_lock(7714201)")
        .await
        .expect("lock");
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
        name,
    )
    .fetch_one(&mut *conn)
    .await
    .expect("template lookup");
    if !exists {
        let building = format!("{name}_building");
        conn.execute(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)").as_str())
            .await
            .expect("drop");
        conn.execute(format!("CREATE DATABASE {building}").as_str())
            .await
            .expect("create template");
        let mut t = PgConnection::connect(&url_for(&building))
            .await
            .expect("connect template");
        MIGRATOR.run(&mut t).await.expect("migrations apply");
        t.close().await.expect("close template");
        conn.execute(format!("ALTER DATABASE {building} RENAME TO {name}").as_str())
            .await
            .expect("rename");
    }
    conn.execute("SELECT pg_advisory_unlock(7714201)")
        .await
        .expect("unlock");
    name
}

/// Creates an empty, migrated database and returns its name.
pub async fn fresh_database() -> String {
    let mut conn = admin().await;
    let template = ensure_template(&mut conn).await;
    let name = format!("inventiv_test_{}", uuid::Uuid::new_v4().simple());
    let sql = format!("CREATE DATABASE {name} TEMPLATE {template}");
    let mut tries = 0;
    loop {
        match conn.execute(sql.as_str()).await {
            Ok(_) => break,
            // Another process may be cloning the template at this instant.
            Err(e) if tries < 50 && e.to_string().contains("being accessed by other users") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("create test database: {e}"),
        }
    }
    conn.close().await.expect("close admin");
    name
}
