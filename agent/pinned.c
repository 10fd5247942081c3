/* placeholder: pinned */
