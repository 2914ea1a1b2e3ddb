import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { PROBE } from '@backchannel/contracts';

@Module({})
class ProbeModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create<NestFastifyApplication>(ProbeModule, new FastifyAdapter());
  await app.listen(0, '127.0.0.1');
  console.log(PROBE, app.getHttpServer().address());
  await app.close();
}
void main();
