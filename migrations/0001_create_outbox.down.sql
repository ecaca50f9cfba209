drop table messages;
