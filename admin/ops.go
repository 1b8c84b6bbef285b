package admin

// ProtocolVersion changes when a request or a result changes shape: a
// command and a daemon of different versions say so instead of misreading
// each other.
const ProtocolVersion = 2

// The operations of the admin protocol. Each names the arguments it takes
// (Args) and the result it returns, both defined in types.go.
const (
	OpPing = "ping" // → Ping

	OpListCreate = "list.create" // CreateList → ListInfo
	OpListAll    = "list.all"    // → []ListInfo
	OpListShow   = "list.show"   // → ListInfo
	OpListSet    = "list.set"    // ListSettings → ListInfo
	OpListDNS    = "list.dns"    // → []DNSRecord
	OpListKey    = "list.key"    // → PublicKey

	OpOrgAdd    = "org.add"    // OrgAdd
	OpOrgList   = "org.list"   // → []OrgInfo
	OpOrgRemove = "org.remove" // OrgRef

	OpMemberAdd    = "member.add"    // AddMember → Member
	OpMemberRemove = "member.remove" // MemberRef
	OpMemberList   = "member.list"   // → []Member
	OpMemberKey    = "member.key"    // MemberKey → Member

	OpRoleSet = "role.set" // RoleSet → ListInfo

	OpAdmissionPropose  = "admission.propose"  // Propose → AdmissionInfo
	OpAdmissionVote     = "admission.vote"     // VoteArgs → AdmissionInfo
	OpAdmissionWithdraw = "admission.withdraw" // VoteArgs → AdmissionInfo
	OpAdmissionList     = "admission.list"     // → []AdmissionInfo
	OpAdmissionShow     = "admission.show"     // VoteArgs → AdmissionInfo

	OpGuidelinesPublish = "guidelines.publish" // GuidelinesArgs → Guidelines
	OpGuidelinesShow    = "guidelines.show"    // → Guidelines
	OpGuidelinesSign    = "guidelines.sign"    // GuidelinesArgs → Member

	OpReport = "report" // ReportArgs → Report
	OpBackup = "backup" // → a stream: the backup tar

	OpAuditList   = "audit.list"   // AuditArgs → []AuditRecord
	OpAuditVerify = "audit.verify" // → AuditVerification

	OpHoldList    = "hold.list"    // → []Hold
	OpHoldShow    = "hold.show"    // HoldArgs → Hold
	OpHoldRelease = "hold.release" // HoldArgs → Hold (what was released)
	OpHoldReject  = "hold.reject"  // HoldArgs

	OpMemberConfirmKey  = "member.confirm-key"  // MemberRef → Member
	OpMemberCert        = "member.cert"         // MemberCert → Member
	OpMemberConfirmCert = "member.confirm-cert" // MemberRef → Member
	OpMemberSet         = "member.set"          // MemberSet → Member
	OpListCert          = "list.cert"           // ListCert → Certificate

	OpQueueList  = "queue.list"  // QueueArgs → []QueueEntry
	OpQueueRetry = "queue.retry" // QueueArgs → Count
	OpQueueDrop  = "queue.drop"  // QueueArgs → Count
)

// ServerWide are the operations not about one list: the daemon does not
// look for a list (the one named, or the only one) before running them.
var ServerWide = map[string]bool{
	OpPing: true, OpListCreate: true, OpListAll: true, OpQueueList: true, OpQueueRetry: true,
	OpQueueDrop: true, OpAuditList: true, OpAuditVerify: true, OpBackup: true,
}
