/* placeholder: watch */
