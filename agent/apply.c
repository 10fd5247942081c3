/* placeholder: apply */
