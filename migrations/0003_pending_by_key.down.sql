drop index messages_pending_key_idx;
