/**
 * The client a connection speaks for. Without a PROXY header it is the
 * socket's peer; with one from a trusted balancer, the address in the header.
 * Everything that asks "who is the client" ($remote_addr, X-Forwarded-For,
 * ip_hash, allow/deny, per-client limits) asks here.
 */
import type { Socket } from 'node:net';
import type { ProxyEndpoint } from './parse.js';

export interface Peer {
  /** The real client. */
  source: ProxyEndpoint;
  /** The address the client connected to (the balancer's front). */
  destination: ProxyEndpoint | null;
}

const peers = new WeakMap<Socket, Peer>();

export function setPeer(socket: Socket, peer: Peer): void {
  peers.set(socket, peer);
}

export function peerOf(socket: Socket): Peer | undefined {
  return peers.get(socket);
}

/** The client's address: from a trusted PROXY header when there was one, else the socket's peer. */
export function clientAddress(socket: Socket): string {
  return peers.get(socket)?.source.address ?? socket.remoteAddress ?? '';
}

export function clientPort(socket: Socket): number {
  return peers.get(socket)?.source.port ?? socket.remotePort ?? 0;
}
