/* placeholder: api */
