// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title RewardDistributor
/// @notice Pays the contributors of every Kyodo campaign in one ERC-20 by cumulative Merkle roots.
///
/// Requesters fund their campaigns' budgets; each epoch the platform submits the root of a tree
/// whose leaves are `(account, cumulativeAmount)` (OpenZeppelin StandardMerkleTree encoding), the
/// CID of the full payout table on IPFS, and the cumulative amount it commits in total and per
/// campaign. After a timelock anyone accepts the root (a guardian may revoke it first); then
/// anyone may claim `cumulativeAmount - claimed[account]` for an account with a proof.
///
/// Invariants (see docs/contracts.md):
///   I1  for every campaign: max(accepted, pending) committed <= deposited - refunded
///   I2  totalCommitted of the current and of the pending root <= totalDeposited - totalRefunded
///   I3  totalClaimed <= totalCommitted of the current root
///   I4  claimed[account] only grows, and only up to that account's leaf in the current root
/// so the contract always holds what the current root still owes.
contract RewardDistributor is AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant ROOT_UPDATER_ROLE = keccak256("ROOT_UPDATER_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    bytes32 public constant CAMPAIGN_MANAGER_ROLE = keccak256("CAMPAIGN_MANAGER_ROLE");
    uint64 public constant MAX_TIMELOCK = 365 days;
    /// @dev `_record`'s index for a single `claim`: its errors are raised as they are.
    uint256 private constant SINGLE = type(uint256).max;

    enum RootStatus {
        None,
        Pending,
        Accepted,
        Revoked
    }

    struct Campaign {
        address owner;
        bool closed;
        // The last root that listed this campaign. Whether its value counts is resolved lazily
        // from that root's status, so accepting or revoking a root costs O(1) in campaigns.
        uint64 pendingRootId;
        uint128 deposited;
        uint128 refunded;
        uint128 committed; // accepted commitment before `pendingRootId`
        uint128 pendingCommitted; // commitment listed by `pendingRootId`
    }

    struct RootRecord {
        bytes32 root;
        uint128 totalCommitted;
        uint64 validAt;
        RootStatus status;
        string payoutTableCid;
    }

    // Storage order matters for claim() gas: `_outstanding` is declared first so that it shares
    // a slot with Pausable's `_paused`, and claim() reads both with one cold SLOAD.
    /// @dev Committed by the current root and not yet claimed: currentTotal - totalClaimed.
    uint128 private _outstanding;
    /// @notice Root of the accepted tree (a copy of the current record's root, for one SLOAD).
    bytes32 public currentRoot;
    uint64 public rootCount;
    uint64 public currentRootId;
    uint64 public pendingRootId;
    uint128 public totalDeposited;
    uint128 public totalRefunded;

    IERC20 public immutable token;
    uint64 public immutable timelock;

    /// @notice Cumulative amount paid to each account (one slot per account).
    mapping(address account => uint256 amount) public claimed;
    mapping(uint256 campaignId => Campaign) private _campaigns;
    mapping(uint256 rootId => RootRecord) private _roots;

    event CampaignCreated(uint256 indexed campaignId, address indexed owner);
    event CampaignClosed(uint256 indexed campaignId);
    event Funded(uint256 indexed campaignId, address indexed from, uint256 amount);
    event Refunded(uint256 indexed campaignId, address indexed to, uint256 amount);
    event RootSubmitted(
        uint256 indexed rootId, bytes32 indexed root, string payoutTableCid, uint256 totalCommitted, uint64 validAt
    );
    event CampaignCommitted(uint256 indexed rootId, uint256 indexed campaignId, uint256 committed);
    event RootAccepted(uint256 indexed rootId, bytes32 indexed root, uint256 totalCommitted);
    event RootRevoked(uint256 indexed rootId, bytes32 indexed root, address indexed by);
    event Claimed(address indexed account, uint256 amount, uint256 cumulativeAmount);

    error ZeroAddress();
    error ZeroAmount();
    error AmountTooLarge();
    error TimelockTooLong(uint64 maximum);
    error CampaignExists(uint256 campaignId);
    error UnknownCampaign(uint256 campaignId);
    error NotCampaignOwner(uint256 campaignId, address caller);
    error CampaignIsClosed(uint256 campaignId);
    error CampaignNotClosed(uint256 campaignId);
    error RefundExceedsAvailable(uint256 campaignId, uint256 available);
    error PendingRootExists(uint256 rootId);
    error NoPendingRoot();
    error ZeroRoot();
    error RootUnchanged();
    error EmptyCid();
    error LengthMismatch();
    error CampaignsNotSorted();
    error CommitmentDecreased(uint256 campaignId, uint256 accepted);
    error BudgetExceeded(uint256 campaignId, uint256 budget);
    error ExceedsDeposits(uint256 totalCommitted, uint256 available);
    error TotalMismatch(uint256 expected);
    error TimelockNotElapsed(uint64 validAt);
    error InvalidProof();
    error NothingToClaim(uint256 alreadyClaimed);
    error ExceedsCommitted(uint256 amount, uint256 outstanding);
    /// @notice Entry `index` of a `claimMany` batch failed with `reason` (an error of `claim`).
    error ClaimRejected(uint256 index, bytes reason);

    /// @param timelock_ seconds between submitRoot and the earliest acceptRoot.
    /// @param updater, guardian, manager receive their role unless zero (the admin can grant later).
    constructor(IERC20 token_, uint64 timelock_, address admin, address updater, address guardian, address manager) {
        if (address(token_) == address(0) || admin == address(0)) revert ZeroAddress();
        if (timelock_ > MAX_TIMELOCK) revert TimelockTooLong(MAX_TIMELOCK);
        token = token_;
        timelock = timelock_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (updater != address(0)) _grantRole(ROOT_UPDATER_ROLE, updater);
        if (guardian != address(0)) _grantRole(GUARDIAN_ROLE, guardian);
        if (manager != address(0)) _grantRole(CAMPAIGN_MANAGER_ROLE, manager);
    }

    // ---------------------------------------------------------------- campaigns

    /// @notice Registers a campaign and its owner (the only address that may fund it and receive
    ///         its refund). Done by the platform, so nobody can squat a campaign id.
    function createCampaign(uint256 campaignId, address owner) external onlyRole(CAMPAIGN_MANAGER_ROLE) {
        if (owner == address(0)) revert ZeroAddress();
        Campaign storage c = _campaigns[campaignId];
        if (c.owner != address(0)) revert CampaignExists(campaignId);
        c.owner = owner;
        emit CampaignCreated(campaignId, owner);
    }

    /// @notice Closes a campaign: no more funding; its unspent budget becomes refundable. Done by
    ///         the platform after the campaign's last accepted rewards are in a submitted root, so an
    ///         owner cannot withdraw a budget that accepted labels are still waiting for.
    function closeCampaign(uint256 campaignId) external onlyRole(CAMPAIGN_MANAGER_ROLE) {
        Campaign storage c = _campaign(campaignId);
        if (c.closed) revert CampaignIsClosed(campaignId);
        c.closed = true;
        emit CampaignClosed(campaignId);
    }

    /// @notice Pulls `amount` from the campaign's owner (after `approve`). Credits the balance
    ///         change, not `amount`, so a fee-on-transfer token cannot inflate the budget.
    function fund(uint256 campaignId, uint256 amount) external nonReentrant whenNotPaused {
        _fund(campaignId, amount);
    }

    /// @notice `fund` with an EIP-2612 permit instead of a prior `approve`.
    function fundWithPermit(uint256 campaignId, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
        whenNotPaused
    {
        // A front-runner may submit the permit first; the allowance is then in place already and
        // the pull below still succeeds, so a failed permit is not an error by itself.
        try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        _fund(campaignId, amount);
    }

    /// @notice Returns unspent budget of a closed campaign to its owner: at most
    ///         deposited - refunded - max(accepted, pending) committed.
    function refund(uint256 campaignId, uint256 amount) external nonReentrant whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        Campaign storage c = _campaign(campaignId);
        if (c.owner != msg.sender) revert NotCampaignOwner(campaignId, msg.sender);
        if (!c.closed) revert CampaignNotClosed(campaignId);
        uint256 available = uint256(c.deposited) - c.refunded - _reservedCommitted(c);
        if (amount > available) revert RefundExceedsAvailable(campaignId, available);
        c.refunded += uint128(amount);
        totalRefunded += uint128(amount);
        emit Refunded(campaignId, msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- roots

    /// @notice Proposes a new cumulative root. `campaignIds` (strictly increasing) and
    ///         `campaignCommitted` give the new cumulative commitment of every campaign whose
    ///         commitment changed since the current root; `totalCommitted` must equal the current
    ///         root's total plus those increases.
    function submitRoot(
        bytes32 root,
        string calldata payoutTableCid,
        uint256 totalCommitted,
        uint256[] calldata campaignIds,
        uint256[] calldata campaignCommitted
    ) external onlyRole(ROOT_UPDATER_ROLE) returns (uint64 rootId) {
        if (pendingRootId != 0) revert PendingRootExists(pendingRootId);
        if (root == bytes32(0)) revert ZeroRoot();
        if (root == currentRoot) revert RootUnchanged();
        if (bytes(payoutTableCid).length == 0) revert EmptyCid();
        if (campaignIds.length != campaignCommitted.length) revert LengthMismatch();
        uint256 available = uint256(totalDeposited) - totalRefunded;
        if (totalCommitted > available) revert ExceedsDeposits(totalCommitted, available);

        rootId = ++rootCount;
        uint256 expected = _commitCampaigns(rootId, campaignIds, campaignCommitted);
        if (totalCommitted != expected) revert TotalMismatch(expected);

        uint64 validAt = uint64(block.timestamp) + timelock;
        RootRecord storage r = _roots[rootId];
        r.root = root;
        r.totalCommitted = uint128(totalCommitted);
        r.validAt = validAt;
        r.status = RootStatus.Pending;
        r.payoutTableCid = payoutTableCid;
        pendingRootId = rootId;
        emit RootSubmitted(rootId, root, payoutTableCid, totalCommitted, validAt);
    }

    /// @notice Makes the pending root current once its timelock has passed. Anyone may call it.
    function acceptRoot() external {
        uint64 id = pendingRootId;
        if (id == 0) revert NoPendingRoot();
        RootRecord storage r = _roots[id];
        if (block.timestamp < r.validAt) revert TimelockNotElapsed(r.validAt);
        uint128 previousTotal = _roots[currentRootId].totalCommitted;
        uint128 newTotal = r.totalCommitted;
        r.status = RootStatus.Accepted;
        currentRoot = r.root;
        currentRootId = id;
        pendingRootId = 0;
        // newTotal >= previousTotal: submitRoot only accepts non-decreasing campaign commitments.
        _outstanding += newTotal - previousTotal;
        emit RootAccepted(id, r.root, newTotal);
    }

    /// @notice Discards the pending root before it can be accepted.
    function revokePendingRoot() external onlyRole(GUARDIAN_ROLE) {
        uint64 id = pendingRootId;
        if (id == 0) revert NoPendingRoot();
        RootRecord storage r = _roots[id];
        r.status = RootStatus.Revoked;
        pendingRootId = 0;
        emit RootRevoked(id, r.root, msg.sender);
    }

    // ---------------------------------------------------------------- claims

    /// @notice Pays `cumulativeAmount - claimed[account]` to `account`. Anyone may submit it, so a
    ///         relayer can pay the gas; the tokens always go to `account`.
    function claim(address account, uint256 cumulativeAmount, bytes32[] calldata proof) external whenNotPaused {
        uint128 owed = _outstanding;
        uint256 amount = _record(account, cumulativeAmount, proof, currentRoot, owed, SINGLE);
        unchecked {
            _outstanding = owed - uint128(amount); // _record checked amount <= owed
        }
        token.safeTransfer(account, amount);
    }

    /// @notice `claim` for many accounts in one transaction, for relayers: the base transaction
    ///         cost, the cold reads of the root, the paused flag and the outstanding total, and
    ///         the cold access to the token are paid once per batch instead of once per claim.
    ///         All or nothing: one bad entry reverts the whole batch with
    ///         `ClaimRejected(index, reason)`, `reason` being the error `claim` would have raised
    ///         (`InvalidProof()`, `NothingToClaim(alreadyClaimed)`, `ExceedsCommitted(...)`), so
    ///         the relayer drops that entry and sends the rest again. An empty batch does nothing.
    ///         Every state change of the batch happens before its first token transfer.
    function claimMany(
        address[] calldata accounts,
        uint256[] calldata cumulativeAmounts,
        bytes32[][] calldata proofs
    ) external whenNotPaused {
        uint256 n = accounts.length;
        if (cumulativeAmounts.length != n || proofs.length != n) revert LengthMismatch();
        bytes32 root = currentRoot;
        uint128 owed = _outstanding;
        uint256[] memory amounts = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            uint256 amount = _record(accounts[i], cumulativeAmounts[i], proofs[i], root, owed, i);
            unchecked {
                owed -= uint128(amount); // _record checked amount <= owed
            }
            amounts[i] = amount;
        }
        _outstanding = owed;
        for (uint256 i; i < n; ++i) {
            token.safeTransfer(accounts[i], amounts[i]);
        }
    }

    // ---------------------------------------------------------------- pause

    /// @notice Stops every token movement (fund, refund, claim). Roots can still be submitted,
    ///         revoked and accepted, so a bad root can be replaced while paused.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @notice Resuming needs the admin: a guardian key alone can stop payouts but not restart them.
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    // ---------------------------------------------------------------- views

    function campaign(uint256 campaignId)
        external
        view
        returns (
            address owner,
            bool closed,
            uint256 deposited,
            uint256 refunded,
            uint256 committed,
            uint256 reserved,
            uint256 refundable
        )
    {
        Campaign storage c = _campaigns[campaignId];
        owner = c.owner;
        closed = c.closed;
        deposited = c.deposited;
        refunded = c.refunded;
        committed = _acceptedCommitted(c);
        reserved = _reservedCommitted(c);
        refundable = closed ? deposited - refunded - reserved : 0;
    }

    function rootInfo(uint64 rootId)
        external
        view
        returns (bytes32 root, string memory payoutTableCid, uint256 totalCommitted, uint64 validAt, RootStatus status)
    {
        RootRecord storage r = _roots[rootId];
        return (r.root, r.payoutTableCid, r.totalCommitted, r.validAt, r.status);
    }

    /// @notice Cumulative amount committed by the current (accepted) root.
    function currentTotalCommitted() public view returns (uint256) {
        return _roots[currentRootId].totalCommitted;
    }

    function totalClaimed() external view returns (uint256) {
        return currentTotalCommitted() - _outstanding;
    }

    /// @notice What the current root still owes: totalCommitted - totalClaimed.
    function outstanding() external view returns (uint256) {
        return _outstanding;
    }

    // ---------------------------------------------------------------- internals

    function _fund(uint256 campaignId, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        Campaign storage c = _campaign(campaignId);
        if (c.owner != msg.sender) revert NotCampaignOwner(campaignId, msg.sender);
        if (c.closed) revert CampaignIsClosed(campaignId);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        uint256 newTotal = uint256(totalDeposited) + received;
        if (newTotal > type(uint128).max) revert AmountTooLarge();
        totalDeposited = uint128(newTotal);
        c.deposited += uint128(received); // <= totalDeposited, cannot overflow
        emit Funded(campaignId, msg.sender, received);
    }

    /// @dev Checks one leaf against `root` and records it: claimed[account] = cumulativeAmount.
    ///      Returns what it pays; `owed` is what the current root still owes before it. The
    ///      caller updates `_outstanding` and transfers. A failure reverts with the plain error
    ///      when `index == SINGLE`, else with `ClaimRejected(index, error)`.
    function _record(
        address account,
        uint256 cumulativeAmount,
        bytes32[] calldata proof,
        bytes32 root,
        uint128 owed,
        uint256 index
    ) private returns (uint256 amount) {
        if (!_verify(proof, root, _leaf(account, cumulativeAmount))) {
            _reject(index, abi.encodeWithSelector(InvalidProof.selector));
        }
        uint256 already = claimed[account];
        if (cumulativeAmount <= already) _reject(index, abi.encodeWithSelector(NothingToClaim.selector, already));
        unchecked {
            amount = cumulativeAmount - already;
        }
        // Only reachable if a root's leaves add up to more than its totalCommitted: the shortfall
        // must not be paid out of other campaigns' budgets.
        if (amount > owed) _reject(index, abi.encodeWithSelector(ExceedsCommitted.selector, amount, owed));
        claimed[account] = cumulativeAmount;
        emit Claimed(account, amount, cumulativeAmount);
    }

    /// @dev StandardMerkleTree's leaf, keccak256(bytes.concat(keccak256(abi.encode(account,
    ///      cumulativeAmount)))), hashed in the scratch space instead of freshly allocated memory.
    function _leaf(address account, uint256 cumulativeAmount) private pure returns (bytes32 leaf) {
        assembly ("memory-safe") {
            mstore(0x00, and(account, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(0x20, cumulativeAmount)
            mstore(0x00, keccak256(0x00, 0x40))
            leaf := keccak256(0x00, 0x20)
        }
    }

    /// @dev `MerkleProof.verifyCalldata` (sorted pairs, OpenZeppelin's commutative keccak256),
    ///      as one loop over calldata: no per-level bounds check or internal call. The decoder
    ///      has already checked that `proof` lies within the calldata.
    function _verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf) private pure returns (bool ok) {
        assembly ("memory-safe") {
            let computed := leaf
            let end := add(proof.offset, shl(5, proof.length))
            for { let p := proof.offset } lt(p, end) { p := add(p, 0x20) } {
                let sibling := calldataload(p)
                // Sorted pair: the smaller hash first.
                let lower := xor(computed, mul(xor(computed, sibling), lt(sibling, computed)))
                mstore(0x00, lower)
                mstore(0x20, xor(lower, xor(computed, sibling)))
                computed := keccak256(0x00, 0x40)
            }
            ok := eq(computed, root)
        }
    }

    function _reject(uint256 index, bytes memory reason) private pure {
        if (index == SINGLE) {
            assembly ("memory-safe") {
                revert(add(reason, 0x20), mload(reason))
            }
        }
        revert ClaimRejected(index, reason);
    }

    function _commitCampaigns(uint64 rootId, uint256[] calldata ids, uint256[] calldata values)
        private
        returns (uint256 expected)
    {
        expected = _roots[currentRootId].totalCommitted;
        uint256 lastId;
        for (uint256 i; i < ids.length; ++i) {
            uint256 id = ids[i];
            if (i != 0 && id <= lastId) revert CampaignsNotSorted();
            lastId = id;
            Campaign storage c = _campaign(id);
            uint128 accepted = _acceptedCommitted(c);
            uint256 value = values[i];
            if (value < accepted) revert CommitmentDecreased(id, accepted);
            uint256 budget = uint256(c.deposited) - c.refunded;
            if (value > budget) revert BudgetExceeded(id, budget);
            c.committed = accepted;
            c.pendingCommitted = uint128(value);
            c.pendingRootId = rootId;
            expected += value - accepted;
            emit CampaignCommitted(rootId, id, value);
        }
    }

    function _campaign(uint256 campaignId) private view returns (Campaign storage c) {
        c = _campaigns[campaignId];
        if (c.owner == address(0)) revert UnknownCampaign(campaignId);
    }

    function _acceptedCommitted(Campaign storage c) private view returns (uint128) {
        uint64 id = c.pendingRootId;
        if (id != 0 && _roots[id].status == RootStatus.Accepted) return c.pendingCommitted;
        return c.committed;
    }

    /// @dev max(accepted, pending) commitment; a pending value is never below the accepted one.
    function _reservedCommitted(Campaign storage c) private view returns (uint128) {
        uint64 id = c.pendingRootId;
        if (id != 0 && (id == pendingRootId || _roots[id].status == RootStatus.Accepted)) {
            return c.pendingCommitted;
        }
        return c.committed;
    }
}
