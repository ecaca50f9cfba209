// TODO(layout): import from src/migrator/migrator.ts. bench/harness.ts (another branch's
// file) still imports this path; once it does not, delete src/schema/.
export { migrateDown, migrateUp, migrationStatus } from '../migrator/migrator.js';
