/* placeholder: metrics */
