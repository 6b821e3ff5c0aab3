//! Access tokens at rest across a key rotation.

use std::collections::HashMap;

use plaidhook::crypto::TokenCipher;
use plaidhook::items::rows::{self as items, LinkedItem};
use plaidhook::plaid::AccessToken;
use secrecy::SecretString;
use testkit::{settings_with, TestDatabase};

const OLD_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const NEW_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn cipher(active: &str, keys: &[(&str, &str)]) -> TokenCipher {
    let keys: HashMap<String, SecretString> = keys
        .iter()
        .map(|(id, key)| (id.to_string(), SecretString::from(key.to_string())))
        .collect();
    TokenCipher::new(active, &keys).unwrap()
}

#[tokio::test]
async fn after_a_rotation_reseal_moves_every_token_to_the_new_key_and_the_old_key_can_go() {
    let database = TestDatabase::new();
    let settings = settings_with(&[("PLAIDHOOK__DATABASE__URL", &database.url)]).unwrap();
    plaidhook::store::migrate(&settings.database).await.unwrap();
    let db = plaidhook::store::lazy_pool(&settings.database).unwrap();

    let before = cipher("k1", &[("k1", OLD_KEY)]);
    let token = AccessToken::new("access-sandbox-rotate-me");
    let mut tx = db.begin().await.unwrap();
    let id = items::link(
        &mut tx,
        &before,
        LinkedItem {
            plaid_item_id: "item-rot",
            access_token: &token,
            client_user_id: Some("user-1"),
            institution_id: None,
            institution_name: None,
        },
    )
    .await
    .unwrap()
    .id();
    tx.commit().await.unwrap();

    // Rotation: the new key is active, the old one still configured.
    let during = cipher("k2", &[("k1", OLD_KEY), ("k2", NEW_KEY)]);
    assert_eq!(items::reseal_tokens(&db, &during).await.unwrap(), 1);
    assert_eq!(
        items::reseal_tokens(&db, &during).await.unwrap(),
        0,
        "nothing left on the old key"
    );

    // The old key is gone from the configuration; the token still opens.
    let after = cipher("k2", &[("k2", NEW_KEY)]);
    let mut conn = db.acquire().await.unwrap();
    let items::Credentials {
        plaid_item_id,
        access_token: opened,
    } = items::credentials(&mut conn, &after, id).await.unwrap();
    assert_eq!(plaid_item_id, "item-rot");
    assert_eq!(opened, token);
    drop(conn);
    db.close().await;
}
