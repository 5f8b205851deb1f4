"""Reading flare MVTS data: one module per source, a columnar store, and a dispatcher."""
