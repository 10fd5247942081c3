/* placeholder: loader */
